chmod 0600 foo1/foo2/bar foo1/foo2/baz
chmod 0700 foo1/foo2 foo1
