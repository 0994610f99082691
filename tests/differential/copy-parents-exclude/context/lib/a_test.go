lib/a_test.go
