/* The one vmlet version: hostd reports it in node facts and logs it,
 * vmletctl prints it for --version. A build may override it with
 * -DVMLET_VERSION=... */
#ifndef VMLET_VERSION_H
#define VMLET_VERSION_H

#ifndef VMLET_VERSION
#define VMLET_VERSION "0.1.0"
#endif

#endif
