printf aaa > a
ln a b
mkdir d
ln a d/c
ln a d/x
