module github.com/dst-traps/dst

go 1.26
