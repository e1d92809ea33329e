package bundle

import (
	"encoding/json"
	"io"
)

// readDomainBundle decodes a domain's bundle.json from r in one streaming
// pass, with the checks of strictjson.Unmarshal (see decodeStream). The
// advisories are checked and counted but not kept (the returned bundle's
// Advisories is nil); reading the whole document into memory, as
// strictjson.Unmarshal needs, took several times its size.
func readDomainBundle(r io.Reader) (DomainBundle, int, error) {
	var exports []VexExport
	b, n, err := streamDomainBundle(r, func(e VexExport) error {
		exports = append(exports, e)
		return nil
	}, func() {
		if exports == nil {
			exports = []VexExport{}
		}
	})
	if err != nil {
		return DomainBundle{}, 0, err
	}
	b.Exports = exports
	return b, n, nil
}

// streamDomainBundle is readDomainBundle handing each export to export as it
// is decoded instead of keeping them: memory stays bounded by one export
// however many the domain has. present is called when the document holds an
// exports array (empty or not), so that callers can tell it from null. The
// returned bundle's Exports and Advisories are nil.
func streamDomainBundle(r io.Reader, export func(VexExport) error, present func()) (DomainBundle, int, error) {
	var b DomainBundle
	count := 0
	exports := &elementDecoder{field: "exports"}
	err := decodeStream(r, &b, "bundle.json", map[string]fieldReader{
		"advisories": func(dec *json.Decoder) error {
			n, err := walkElements(dec, "Go struct field DomainBundle.advisories of type []json.RawMessage")
			count = n
			return err
		},
		"exports": func(dec *json.Decoder) error {
			null, err := eachElement(dec, "Go struct field DomainBundle.exports of type []bundle.VexExport", func(i int) error {
				var e VexExport
				if err := exports.decode(dec, i, &e); err != nil {
					return err
				}
				return export(e)
			})
			if err == nil && !null && present != nil {
				present()
			}
			return err
		},
	})
	if err != nil {
		return DomainBundle{}, 0, err
	}
	return b, count, nil
}
