printf aaa > a
mkdir d
ln a d/c
printf bbb > b
ln b d/e
ln b d/f
