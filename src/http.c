/* http: not yet written. */
#include "http.h"
