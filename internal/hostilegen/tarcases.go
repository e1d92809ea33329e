package main

import (
	"archive/tar"
	"bytes"
	"path"
	"strconv"
	"strings"

	"github.com/stellaops/stellaops-cli/pkg/bundle"
)

// archiveCase writes es as cases/<name>.tar.zst (or .tar.gz) and records
// the case.
func (g *gen) archiveCase(name, comp string, es []entry, want int, msg, desc string, opts ...caseOpt) string {
	data, err := compress(comp, es)
	if err != nil {
		panic(name + ": " + err.Error())
	}
	ext := ".tar.zst"
	if comp == "gzip" {
		ext = ".tar.gz"
	}
	p := path.Join("cases", name+ext)
	g.files[p] = data
	g.add(name, want, msg, desc, append([]caseOpt{form(FormArchive), casePath(p)}, opts...)...)
	return p
}

// unpackedCase records a case that unpacks the archive at p into a folder.
func (g *gen) unpackedCase(name, p string, want int, msg, desc string, opts ...caseOpt) {
	g.add(name, want, msg, desc, append([]caseOpt{form(FormUnpacked), casePath(p)}, opts...)...)
}

const vexPath = "mirror/primary/vex/openvex/2026-03.json"

func (g *gen) archiveCases() error {
	next := treeEntries(g.next)
	const ok = "imported export 20260315T010000Z"
	p := g.archiveCase("control-tar-zst", "zstd", next, 0, "verified: export 20260315T010000Z", "the next export as export --archive writes it", importMsg(ok))
	g.archiveCase("control-tar-gz", "gzip", next, 0, "verified: export 20260315T010000Z", "the next export as a .tar.gz", importMsg(ok))
	g.add("control-stdin", 0, "verified: export 20260315T010000Z", "the next export's .tar.zst on standard input",
		form(FormStdin), casePath(p), importMsg(ok))

	g.archiveCase("tar-dotdot", "zstd", insertEntry(next, "mirror/", fileEntry("mirror/../../../../tmp/stellaops-hostile-dotdot.json", []byte("{}\n"))),
		2, `name contains ".."`, "an entry mirror/../../../../tmp/... after the real bundle's mirror/ folder")
	p = g.archiveCase("tar-dotdot-first", "zstd", insertEntry(next, "", fileEntry("../stellaops-hostile-dotdot.json", []byte("{}\n"))),
		2, `name contains ".."`, "an entry ../... before everything else")
	g.add("tar-dotdot-stdin", 2, `name contains ".."`, "tar-dotdot-first on standard input", form(FormStdin), casePath(p))
	g.archiveCase("tar-absolute", "zstd", insertEntry(next, "mirror/", fileEntry("/tmp/stellaops-hostile-absolute.json", []byte("{}\n"))),
		2, "absolute name", "an entry /tmp/...")
	g.archiveCase("tar-pax-path-traversal", "zstd", insertEntry(next, "mirror/",
		entry{raw: append(append(paxEntry([2]string{"path", "../../stellaops-hostile-pax.json"}), ustarBlock("mirror/innocent.json", tar.TypeReg, 3)...), padded([]byte("{}\n"))...)}),
		2, `name contains ".."`, "an entry whose USTAR name is harmless and whose PAX path record is ../../...")

	p = g.archiveCase("tar-symlink-escape", "zstd", replaceEntry(next, vexPath, entry{name: vexPath, typ: tar.TypeSymlink, link: "/etc/passwd"}),
		2, "symbolic link to \"/etc/passwd\"", "a listed VEX file replaced by a symbolic link to /etc/passwd")
	g.unpackedCase("unpacked-symlink-escape", p, 2, "not a regular file", "tar-symlink-escape unpacked: the folder holds the symbolic link")
	p = g.archiveCase("tar-symlink-dev-zero", "zstd", replaceEntry(next, vexPath, entry{name: vexPath, typ: tar.TypeSymlink, link: "/dev/zero"}),
		2, "symbolic link to \"/dev/zero\"", "a listed VEX file replaced by a symbolic link to /dev/zero")
	g.unpackedCase("unpacked-symlink-dev-zero", p, 2, "not a regular file", "tar-symlink-dev-zero unpacked: reading the link would never end")
	dirEs := replaceEntry(next, "mirror/primary/vex/openvex/", entry{name: "mirror/primary/vex/openvex", typ: tar.TypeSymlink, link: "../../../../../../tmp"})
	p = g.archiveCase("tar-symlink-folder-then-file", "zstd", dirEs,
		2, "symbolic link to \"../../../../../../tmp\"", "a folder replaced by a symbolic link out of the bundle, followed by a file below it")
	g.unpackedCase("unpacked-symlink-folder", p, 2, "not a regular file",
		"tar-symlink-folder-then-file unpacked (without the file below the link): a folder that is a symbolic link out of the bundle")
	g.archiveCase("tar-hardlink-escape", "zstd", insertEntry(next, "mirror/primary/vex/openvex/", entry{name: "mirror/primary/vex/openvex/passwd.json", typ: tar.TypeLink, link: "/etc/passwd"}),
		2, "hard link to \"/etc/passwd\"", "a hard link to /etc/passwd")
	p = g.archiveCase("tar-hardlink-internal", "zstd", insertEntry(next, vexPath, entry{name: "mirror/primary/vex/openvex/copy.json", typ: tar.TypeLink, link: vexPath}),
		2, "hard link to", "a hard link to a listed file, under an unlisted name")
	g.unpackedCase("unpacked-hardlink-internal", p, 2, "present in the bundle but not listed", "tar-hardlink-internal unpacked: an unlisted second name of a listed file")
	p = g.archiveCase("tar-fifo", "zstd", replaceEntry(next, vexPath, entry{name: vexPath, typ: tar.TypeFifo}),
		2, "named pipe", "a listed VEX file replaced by a FIFO")
	g.unpackedCase("unpacked-fifo", p, 2, "not a regular file", "tar-fifo unpacked: opening the FIFO would block for ever")

	forged := g.base[bundle.ManifestFile]
	g.archiveCase("tar-duplicate-manifest", "zstd", insertEntry(next, "mirror.json", fileEntry("mirror.json", forged)),
		2, "duplicate entry", "mirror.json twice: the second, another export's, would replace the one checked")
	g.archiveCase("tar-duplicate-vex", "zstd", append(append([]entry{}, next...), fileEntry(vexPath, []byte("{\"forged\": true}\n"))),
		2, "duplicate entry", "a listed VEX file again at the end of the archive, with other contents")
	p = g.archiveCase("tar-case-collision", "zstd", insertEntry(next, "mirror.json", fileEntry("MIRROR.json", forged)),
		2, "collides with \"mirror.json\"", "MIRROR.json beside mirror.json")
	g.unpackedCase("unpacked-case-collision", p, 2, "MIRROR.json", "tar-case-collision unpacked (both names exist on Linux)")
	nfc, nfd := "mirror/primary/vex/openvex/caf\u00e9.json", "mirror/primary/vex/openvex/cafe\u0301.json"
	p = g.archiveCase("tar-nfd-collision", "zstd", insertEntry(next, "mirror/primary/vex/openvex/", fileEntry(nfc, []byte("{}\n")), fileEntry(nfd, []byte("{}\n"))),
		2, "collides with", "café.json in NFC and in NFD form")
	g.unpackedCase("unpacked-nfd-collision", p, 2, "present in the bundle but not listed", "tar-nfd-collision unpacked",
		importMsg("collide on case-insensitive or normalising file systems"))

	neg := fileEntry("mirror/primary/vex/openvex/negative.json", nil)
	neg.patch = func(blk []byte) {
		for i := 124; i < 136; i++ {
			blk[i] = 0xff
		}
	}
	g.archiveCase("tar-negative-size", "zstd", insertEntry(next, "mirror/primary/vex/openvex/", neg), 2, "negative size", "an entry whose size field is -1 (base-256)")
	g.archiveCase("tar-gnu-sparse", "zstd", replaceEntry(next, vexPath, entry{raw: append(ustarBlock(vexPath, tar.TypeGNUSparse, 0), make([]byte, 0)...)}),
		2, "malformed tar header", "a listed VEX file as an old GNU sparse entry in a USTAR header")
	sparseMap := padded([]byte("1\n0\n16\n"))
	sparse := append(paxEntry([2]string{"GNU.sparse.major", "1"}, [2]string{"GNU.sparse.minor", "0"},
		[2]string{"GNU.sparse.name", vexPath}, [2]string{"GNU.sparse.realsize", strconv.FormatInt(1<<40, 10)}),
		ustarBlock("mirror/primary/vex/openvex/GNUSparseFile.0", tar.TypeReg, int64(len(sparseMap)+512))...)
	sparse = append(sparse, sparseMap...)
	sparse = append(sparse, padded([]byte("{\"sparse\": true}"))...)
	p = g.archiveCase("tar-pax-sparse", "zstd", replaceEntry(next, vexPath, entry{raw: sparse}),
		2, "GNU sparse file", "a listed VEX file as a PAX 1.0 sparse entry that claims 1 TiB of holes")
	g.unpackedCase("unpacked-sparse-file", p, 2, "size mismatch",
		"tar-pax-sparse unpacked: a listed VEX file that is a sparse file of 1 TiB (import not run: it would copy the terabyte)", importCode(Skip))
	nulName := "mirror/primary/vex/openvex/x.json\x00/../../../../tmp/evil.json"
	g.archiveCase("tar-nul-in-name", "zstd", insertEntry(next, "mirror/primary/vex/openvex/", entry{raw: append(ustarBlock(nulName, tar.TypeReg, 3), padded([]byte("{}\n"))...)}),
		2, "present in the bundle but not listed", "a USTAR name with a NUL; readers that stop at the NUL see an unlisted x.json")
	g.archiveCase("tar-pax-nul-path", "zstd", insertEntry(next, "mirror/primary/vex/openvex/",
		entry{raw: append(append(paxEntry([2]string{"path", "mirror.json\x00.evil"}), ustarBlock("mirror/x.json", tar.TypeReg, 3)...), padded([]byte("{}\n"))...)}),
		2, "malformed tar header", "a PAX path record with a NUL after mirror.json")
	p = g.archiveCase("tar-invalid-utf8-name", "zstd", insertEntry(next, "mirror/", fileEntry("mirror/\xff\xfe.json", []byte("{}\n"))),
		2, "not valid UTF-8", "an entry name that is not UTF-8")
	g.unpackedCase("unpacked-invalid-utf8-name", p, 2, "present in the bundle but not listed", "tar-invalid-utf8-name unpacked", importMsg("invalid UTF-8"))
	p = g.archiveCase("tar-backslash-name", "zstd", insertEntry(next, "mirror/", fileEntry(`mirror\..\..\evil.json`, []byte("{}\n"))),
		2, "backslash", `an entry mirror\..\..\evil.json`)
	g.unpackedCase("unpacked-backslash-name", p, 2, "present in the bundle but not listed", "tar-backslash-name unpacked (a file name with backslashes on Linux)", importMsg("backslash"))
	p = g.archiveCase("tar-control-name", "zstd", insertEntry(next, "mirror/", fileEntry("mirror/\x1b]0;owned\x07.json", []byte("{}\n"))),
		2, "control character", "an entry name with a terminal escape sequence")
	g.unpackedCase("unpacked-control-name", p, 2, "present in the bundle but not listed", "tar-control-name unpacked", importMsg("control character"))
	g.archiveCase("tar-global-header", "zstd", insertEntry(next, "", entry{name: "pax_global_header", typ: tar.TypeXGlobalHeader, pax: map[string]string{"path": "evil"}}),
		2, "PAX global header", "a PAX global header first")

	// Decompression bombs. After mirror.json the reader knows how much the
	// bundle may hold; before it, only the defaults bound the stream.
	g.archiveCase("tar-gzip-bomb", "gzip", append(append([]entry{}, next...), entry{name: "mirror/primary/vex/openvex/bomb.json", typ: tar.TypeReg, n: 64 << 20}),
		2, "archive exceeds limit", "64 MiB of zeros (64 KiB compressed) after the real bundle")
	g.archiveCase("tar-zstd-bomb", "zstd", append(append([]entry{}, next...), entry{name: "mirror/primary/vex/openvex/bomb.json", typ: tar.TypeReg, n: 4 << 30}),
		2, "archive exceeds limit", "4 GiB of zeros after the real bundle")
	g.archiveCase("tar-zstd-bomb-first", "zstd", insertEntry(next, "", entry{name: "0-bomb.json", typ: tar.TypeReg, n: 1 << 30}),
		2, "archive exceeds limit", "1 GiB of zeros before mirror.json")
	var many []entry
	for i := range 6 {
		many = append(many, entry{name: "0-doc-" + strconv.Itoa(i) + ".json", typ: tar.TypeReg, n: 100 << 20})
	}
	g.archiveCase("tar-zstd-files-first", "zstd", insertEntry(next, "", many...),
		2, "archive exceeds limit", "six 100 MiB unlisted files before mirror.json: hashed as they pass, not kept")
	var docs []entry
	for i := range 5 {
		docs = append(docs, entry{name: "keys/" + strconv.Itoa(i) + ".json", typ: tar.TypeReg, n: 256 << 20})
	}
	g.archiveCase("tar-zstd-documents-first", "zstd", insertEntry(next, "", docs...),
		2, "archive exceeds limit", "five 256 MiB rotation statements before mirror.json: verify keeps at most 1 GiB of documents")
	var flood []entry
	for i := range 10000 {
		flood = append(flood, entry{name: "mirror/d" + strconv.Itoa(i) + "/", typ: tar.TypeDir})
	}
	g.archiveCase("tar-entry-flood", "zstd", append(append([]entry{}, next...), flood...),
		2, "archive exceeds limit", "10,000 empty folders after the real bundle")

	p = g.archiveCase("tar-oversized-mirror-json", "zstd", replaceEntry(next, "mirror.json",
		entry{name: "mirror.json", typ: tar.TypeReg, body: g.next[bundle.ManifestFile], fill: ' ', n: 70 << 20}),
		2, "larger than", "mirror.json followed by 70 MiB of JSON whitespace")
	g.unpackedCase("unpacked-oversized-mirror-json", p, 2, "larger than", "tar-oversized-mirror-json unpacked")

	whole, err := compress("zstd", next)
	if err != nil {
		return err
	}
	g.files["cases/tar-truncated.tar.zst"] = whole[:len(whole)*2/3]
	g.add("tar-truncated", 2, "truncated", "the next export's archive cut at two thirds", form(FormArchive), casePath("cases/tar-truncated.tar.zst"))
	g.files["cases/tar-trailing-garbage.tar.zst"] = append(bytes.Clone(whole), []byte(strings.Repeat("garbage", 100))...)
	g.add("tar-trailing-garbage", 2, "trailing data", "the next export's archive followed by garbage", form(FormArchive), casePath("cases/tar-trailing-garbage.tar.zst"))
	return nil
}
