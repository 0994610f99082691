ln -s /real.txt abslink
ln -s ../../real.txt uplink
ln -s /etc/passwd pwlink
