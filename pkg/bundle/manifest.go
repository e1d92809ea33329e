package bundle

import (
	"bytes"
	"encoding/json"
	"io"
)

// minFileEntryJSON is less than the length of any "files" element that can
// pass verification: {"path":"x","size":0,"sha256":"<64 hex digits>"}.
const minFileEntryJSON = 90

// decodeManifest decodes mirror.json with the checks of strictjson.Unmarshal
// (see decodeStream), streaming its files array: each entry is decoded on its
// own and handed to file, instead of the whole document being decoded at
// once, which held several copies of it (12 MiB for 65,536 files) as strings
// and maps. The returned manifest's Files is nil.
func decodeManifest(data []byte, file func(FileEntry)) (Manifest, error) {
	return decodeManifestFrom(bytes.NewReader(data), file)
}

// decodeManifestFrom is decodeManifest reading from r.
func decodeManifestFrom(r io.Reader, file func(FileEntry)) (Manifest, error) {
	var m Manifest
	elems := &elementDecoder{field: "files"}
	err := decodeStream(r, &m, ManifestFile, map[string]fieldReader{
		"files": func(dec *json.Decoder) error {
			_, err := eachElement(dec, "Go struct field Manifest.files of type []bundle.FileEntry", func(i int) error {
				var f FileEntry
				if err := elems.decode(dec, i, &f); err != nil {
					return err
				}
				file(f)
				return nil
			})
			return err
		},
	})
	if err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// fileCountHint guesses how many entries mirror.json's files array holds,
// from the number of "path" keys, bounded by what the document's length
// allows, so that the file table is allocated once.
func fileCountHint(data []byte) int {
	return min(bytes.Count(data, []byte(`"path"`)), len(data)/minFileEntryJSON)
}

// countPathKeys counts the "path" keys fileCountHint counts, reading r a
// block at a time, and returns them with the number of bytes read.
func countPathKeys(r io.Reader) (int, int64, error) {
	key := []byte(`"path"`)
	buf := make([]byte, 64<<10)
	keep, n := 0, 0
	var size int64
	for {
		m, err := r.Read(buf[keep:])
		size += int64(m)
		data := buf[:keep+m]
		n += bytes.Count(data, key)
		// The last len(key)-1 bytes may begin a key the next read ends.
		keep = min(len(key)-1, len(data))
		copy(buf, data[len(data)-keep:])
		if err == io.EOF {
			return n, size, nil
		}
		if err != nil {
			return n, size, err
		}
	}
}

// streamDomainManifest decodes a domain's manifest.json from r with the
// checks of strictjson.Unmarshal (see decodeStream). Each export is decoded
// and checked on its own and then dropped: verify reads only the header,
// and the exports of 65,536 VEX files took 20 MiB of text, decoded whole. The
// returned manifest's Exports is nil; the int is how many exports it lists.
func streamDomainManifest(r io.Reader) (DomainManifest, int, error) {
	var dm DomainManifest
	count := 0
	elems := &elementDecoder{field: "exports"}
	err := decodeStream(r, &dm, DomainManifestName, map[string]fieldReader{
		"exports": func(dec *json.Decoder) error {
			_, err := eachElement(dec, "Go struct field DomainManifest.exports of type []bundle.VexExport", func(i int) error {
				var e VexExport
				count++
				return elems.decode(dec, i, &e)
			})
			return err
		},
	})
	if err != nil {
		return DomainManifest{}, 0, err
	}
	return dm, count, nil
}
