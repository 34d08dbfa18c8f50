// Thin wrappers over libprotobuf-c so Swift can drive the generated C code
// through one generic entry point per operation.
#include "CHavenProtobufC.h"
#include <string.h>

// Every message of the schema (generated/descriptors.c).
extern const ProtobufCMessageDescriptor *const haven_pbc_descriptors[];
extern const unsigned long haven_pbc_descriptor_count;

const ProtobufCMessageDescriptor *haven_pbc_descriptor(const char *full_name) {
    for (unsigned long i = 0; i < haven_pbc_descriptor_count; i++) {
        if (strcmp(haven_pbc_descriptors[i]->name, full_name) == 0) {
            return haven_pbc_descriptors[i];
        }
    }
    return NULL;
}

ProtobufCMessage *haven_pbc_unpack(const ProtobufCMessageDescriptor *descriptor, const uint8_t *bytes, size_t length) {
    return protobuf_c_message_unpack(descriptor, NULL, length, bytes);
}

size_t haven_pbc_packed_size(const ProtobufCMessage *message) {
    return protobuf_c_message_get_packed_size(message);
}

size_t haven_pbc_pack(const ProtobufCMessage *message, uint8_t *out) {
    return protobuf_c_message_pack(message, out);
}

void haven_pbc_free(ProtobufCMessage *message) {
    protobuf_c_message_free_unpacked(message, NULL);
}
