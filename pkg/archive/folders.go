package archive

import (
	"os"
	"sync"
)

// maxIdleFolders bounds the folder handles a folderCache keeps: when it
// holds that many, it is emptied, and the handles no job uses are closed.
const maxIdleFolders = 64

// folderCache keeps an os.Root open for each folder files are being
// created in, so that creating a file opens one name in its folder instead
// of walking its path from the top, one component at a time. A handle is
// opened through the root like any other name, so it cannot lead outside.
type folderCache struct {
	root *os.Root
	mu   sync.Mutex
	open map[string]*folder
}

// folder is an open folder handle and the number of jobs using it.
type folder struct {
	name string
	root *os.Root
	refs int
	// cached is false once the handle left the cache: the last release
	// closes it.
	cached bool
}

// create creates the file name in the folder, with O_EXCL.
func (f *folder) create(name string) (*os.File, error) {
	return f.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
}

func newFolderCache(root *os.Root) *folderCache {
	return &folderCache{root: root, open: map[string]*folder{}}
}

// acquire returns the handle of dir ("." for the root itself), opening it
// if needed; release gives it back.
func (c *folderCache) acquire(dir string) (*folder, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.open[dir]; f != nil {
		f.refs++
		return f, nil
	}
	if len(c.open) >= maxIdleFolders {
		c.evict()
	}
	r := c.root
	if dir != "." {
		var err error
		if r, err = c.root.OpenRoot(dir); err != nil {
			return nil, err
		}
	}
	f := &folder{name: dir, root: r, refs: 1, cached: true}
	c.open[dir] = f
	return f, nil
}

// release gives back a handle acquire returned.
func (c *folderCache) release(f *folder) {
	if f == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f.refs--
	if f.refs == 0 && !f.cached {
		c.closeFolder(f)
	}
}

// evict empties the cache, closing the handles no job uses; the others
// are closed by their last release.
func (c *folderCache) evict() {
	for name, f := range c.open {
		f.cached = false
		if f.refs == 0 {
			c.closeFolder(f)
		}
		delete(c.open, name)
	}
}

// closeAll closes every cached handle; no job may be running.
func (c *folderCache) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, f := range c.open {
		c.closeFolder(f)
		delete(c.open, name)
	}
}

func (c *folderCache) closeFolder(f *folder) {
	if f.root != c.root {
		f.root.Close()
	}
}
