mkdir -p dir
echo f > f
mkdir -p dir/sub
echo x > dir/x
echo y > dir/sub/y
chmod 0755 dir/sub
