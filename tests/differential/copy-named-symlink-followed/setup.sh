ln -s real link
ln -s /dir dlink
