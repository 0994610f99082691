printf new > n
