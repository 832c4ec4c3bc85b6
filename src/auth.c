/* auth: not yet written. */
#include "auth.h"
