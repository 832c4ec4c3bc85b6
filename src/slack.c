/* slack: not yet written. */
#include "slack.h"
