/* backoff: not yet written. */
#include "backoff.h"
