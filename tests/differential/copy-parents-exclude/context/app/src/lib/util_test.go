app/src/lib/util_test.go
