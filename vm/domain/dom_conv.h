/* Inside the converter: the boot plan (dom_boot.c). */
#ifndef SCUSE_DOM_CONV_H
#define SCUSE_DOM_CONV_H

#include "domain/dom_int.h"

/* For each controller slot c of d with served[c], the bootindex its
 * device gets (has_index[c]); rewrites the <boot order>s of devices left
 * in <devices> where renumbering is needed. -1 when out of memory. */
int dom_boot_plan(struct domain *d, xmlNode *root, const bool *served, unsigned *bootindex,
                  bool *has_index);

#endif
