mkdir -p src/in && echo x > src/in/f
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf t.tar -C src .
gzip -n -k t.tar && mv t.tar.gz t.tar.gz.tmp && mv t.tar.gz.tmp t.tar.gz
rm -r src
