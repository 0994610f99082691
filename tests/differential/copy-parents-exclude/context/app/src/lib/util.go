app/src/lib/util.go
