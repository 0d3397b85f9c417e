# The workbook's two commands (README.md): `make lab` and `make test`.
.PHONY: lab test execute setup
lab:     ; bash scripts/workbook.sh lab
test:    ; bash scripts/workbook.sh test
execute: ; bash scripts/workbook.sh execute
setup:   ; bash scripts/workbook.sh setup
