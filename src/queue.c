/* queue: not yet written. */
#include "queue.h"
