chmod 0700 app/src
