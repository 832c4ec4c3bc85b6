/*
 * unittest: how a module shows the unit tests what the daemon does not need
 * (curl's UNITTEST macro). A unit test that needs one compiles the module's
 * .c itself with -DFLUXRELAY_UNITTEST (Makefile.am), which
 *  - turns UNITTEST (a static helper the module calls itself) into an
 *    external function,
 *  - compiles the functions only tests call (in #ifdef FLUXRELAY_UNITTEST),
 *  - and declares both in the module's header, in an #ifdef
 *    FLUXRELAY_UNITTEST block, so no other module can call them.
 * The library and the daemon are built without it.
 */
#ifndef FLUXRELAY_UNITTEST_H
#define FLUXRELAY_UNITTEST_H

#ifdef FLUXRELAY_UNITTEST
#define UNITTEST
#else
#define UNITTEST static
#endif

#endif
