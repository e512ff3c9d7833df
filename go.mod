module github.com/cairnhq/cairn

go 1.26.8
