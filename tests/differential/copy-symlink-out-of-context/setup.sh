ln -s /etc/shadow shadowlink
