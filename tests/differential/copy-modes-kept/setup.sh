chmod 0751 x
chmod 4755 s
chmod 0700 d
