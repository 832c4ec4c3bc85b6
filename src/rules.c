/* rules: not yet written. */
#include "rules.h"
