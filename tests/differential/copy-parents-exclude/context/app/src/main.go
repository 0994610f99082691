app/src/main.go
