mkdir t
printf aaa > t/a
ln t/a t/b
mkdir t/d
ln t/a t/d/c
tar -cf t.tar -C t a b d
rm -r t
