/* metrics: not yet written. */
#include "metrics.h"
