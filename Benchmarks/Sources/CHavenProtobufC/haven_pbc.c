// Thin wrappers over libprotobuf-c so Swift can drive the generated C code
// through one generic entry point per operation.
#include "CHavenProtobufC.h"
#include <string.h>

static const ProtobufCMessageDescriptor *const descriptors[] = {
    &haven__v1__office__descriptor,
    &haven__v1__case__descriptor,
    &haven__v1__list_cases_response__descriptor,
    &haven__v1__survivor__descriptor,
    &haven__v1__client_envelope__descriptor,
    &haven__v1__server_envelope__descriptor,
    &haven__v1__open_case_request__descriptor,
};

const ProtobufCMessageDescriptor *haven_pbc_descriptor(const char *full_name) {
    for (size_t i = 0; i < sizeof(descriptors) / sizeof(descriptors[0]); i++) {
        if (strcmp(descriptors[i]->name, full_name) == 0) {
            return descriptors[i];
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
