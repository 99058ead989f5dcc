# install rules — being written
