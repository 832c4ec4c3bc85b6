/* runtime: not yet written. */
#include "runtime.h"
