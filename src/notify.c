/* notify: not yet written. */
#include "notify.h"
