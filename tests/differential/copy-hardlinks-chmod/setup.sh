printf aaa > a
ln a b
mkdir d
ln a d/c
printf zz > z
