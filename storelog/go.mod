module github.com/dislog/dislog/storelog

go 1.26.8
