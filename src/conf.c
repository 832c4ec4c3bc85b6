/* conf: not yet written. */
#include "conf.h"
