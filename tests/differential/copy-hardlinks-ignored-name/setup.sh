printf aaa > a
ln a b
ln a c
printf 'a\n.dockerignore\n' > .dockerignore
