#include <stdio.h>
int main(void) { puts("fluxrelay"); return 0; }
