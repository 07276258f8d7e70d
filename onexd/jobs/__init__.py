"""Jobs: request -> decision -> spec -> secrets -> runtime -> record."""
