#ifndef STREAMTUBE_CROCKSDB_SHIM_H
#define STREAMTUBE_CROCKSDB_SHIM_H
#include <rocksdb/c.h>
#endif
