app/src/main_test.go
