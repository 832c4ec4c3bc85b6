/* deliver: not yet written. */
#include "deliver.h"
