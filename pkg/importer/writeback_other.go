//go:build !(linux && (amd64 || arm64 || riscv64 || loong64))

package importer

import "os"

// startWriteback is a no-op where sync_file_range(2) is not available with
// the (fd, offset, nbytes, flags) argument order.
func startWriteback(*os.File) {}
