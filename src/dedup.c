/* dedup: not yet written. */
#include "dedup.h"
