mkdir -p dir
echo z > dir/z
mkdir dir/sub
echo y > dir/sub/y
chmod 0711 dir
