# protogen_generate() — being written
