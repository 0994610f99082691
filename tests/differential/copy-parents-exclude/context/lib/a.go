lib/a.go
