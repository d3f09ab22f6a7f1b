module juice

go 1.26.8
