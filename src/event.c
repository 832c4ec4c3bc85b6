/* event: not yet written. */
#include "event.h"
