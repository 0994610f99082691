mkdir x y
printf xxx > x/a
ln x/a x/b
ln x/a x/c
printf yyyy > y/a
