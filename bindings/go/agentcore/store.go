package agentcore

/*
#include <agentcore.h>
*/
import "C"

// Store is a knowledge store (ac_store): documents cut into chunks, searched
// by vector similarity, BM25 or both.
type Store struct {
	core     *Core
	s        *C.ac_store
	sessions map[*Session]struct{} // the sessions it is attached to
}

// Store opens (creating on first use) the store name (ac_store_open); opts
// may be nil.
func (c *Core) Store(name string, opts any) (*Store, error) {
	h, err := c.handle()
	if err != nil {
		return nil, err
	}
	o, err := jsonArg(opts)
	if err != nil {
		return nil, err
	}
	s, err := acStoreOpen(h, name, o)
	if err != nil {
		return nil, err
	}
	st := &Store{core: c, s: s}
	c.adopt(st)
	return st, nil
}

// Close detaches the store from the sessions it is attached to, then closes
// it; closing twice does nothing.
func (s *Store) Close() {
	if s == nil || s.s == nil {
		return
	}
	for sess := range s.sessions {
		_ = sess.DetachStore(s)
	}
	s.sessions = nil
	acStoreClose(s.s)
	s.s = nil
	s.core.disown(s)
}

func (s *Store) handle() (*C.ac_store, error) {
	if s == nil || s.s == nil {
		return nil, errClosed("store")
	}
	return s.s, nil
}

// Add adds a document (ac_store_add), for example
// {"text": "...", "title": "...", "metadata": {...}}, and returns its id.
func (s *Store) Add(doc any) (string, error) {
	h, err := s.handle()
	if err != nil {
		return "", err
	}
	d, err := jsonArg(doc)
	if err != nil {
		return "", err
	}
	return acStoreAdd(h, d)
}

// Update replaces a document's content and/or fields (ac_store_update).
func (s *Store) Update(id string, doc any) error {
	h, err := s.handle()
	if err != nil {
		return err
	}
	d, err := jsonArg(doc)
	if err != nil {
		return err
	}
	return acStoreUpdate(h, id, d)
}

// Delete deletes a document (ac_store_delete).
func (s *Store) Delete(id string) error {
	h, err := s.handle()
	if err != nil {
		return err
	}
	return acStoreDelete(h, id)
}

// DeleteWhere deletes the documents matching a filter and returns how many
// (ac_store_delete_where).
func (s *Store) DeleteWhere(filter any) (int64, error) {
	h, err := s.handle()
	if err != nil {
		return 0, err
	}
	f, err := jsonArg(filter)
	if err != nil {
		return 0, err
	}
	return acStoreDeleteWhere(h, f)
}

// List lists documents, oldest first (ac_store_list); opts may be nil.
func (s *Store) List(opts any) (Object, error) {
	h, err := s.handle()
	if err != nil {
		return nil, err
	}
	o, err := jsonArg(opts)
	if err != nil {
		return nil, err
	}
	return decode[Object](acStoreList(h, o))
}

// Count returns the number of documents (ac_store_count).
func (s *Store) Count() (int64, error) {
	h, err := s.handle()
	if err != nil {
		return 0, err
	}
	return acStoreCount(h)
}

// Search searches the store (ac_store_search); opts may be nil or for
// example {"k": 3, "mode": "bm25"}.
func (s *Store) Search(query string, opts any) (Object, error) {
	h, err := s.handle()
	if err != nil {
		return nil, err
	}
	o, err := jsonArg(opts)
	if err != nil {
		return nil, err
	}
	return decode[Object](acStoreSearch(h, query, o))
}
