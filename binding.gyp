# The native backend (build/Release/amend.node). Built by scripts/build-native.mjs at install time,
# on the machine that will run it, hence -march=native. OpenBLAS is used when
# scripts/detect-blas.mjs can compile and link against it; otherwise only the own GEMM is built.
{
  'variables': {
    'amend_openblas%': '<!(node scripts/detect-blas.mjs enabled)',
    'amend_march%': '<!(node scripts/detect-blas.mjs march)',
  },
  'targets': [
    {
      'target_name': 'amend',
      'sources': [
        'native/src/addon.cc',
        'native/src/attention.cc',
        'native/src/elementwise.cc',
        'native/src/gemm.cc',
        'native/src/linalg.cc',
        'native/src/norm.cc',
        'native/src/threads.cc',
      ],
      'include_dirs': ["<!(node -p \"require('node-addon-api').include_dir\")"],
      'defines': ['NAPI_VERSION=8', 'NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS'],
      # Threads come from the addon's own pool (native/src/threads.cc), not OpenMP: libgomp's
      # spinning workers halve the speed of OpenBLAS calls made right after a kernel.
      'cflags': ['-O3', '-march=<(amend_march)', '-pthread'],
      # fp-contract=fast turns a*b+c into FMA (GNU mode's default, explicit here), and without
      # errno the compiler can inline sqrt.
      'cflags_cc': ['-std=gnu++17', '-O3', '-march=<(amend_march)', '-ffp-contract=fast', '-fno-math-errno',
                    '-fvisibility=hidden', '-pthread'],
      'cflags_cc!': ['-std=gnu++14', '-std=gnu++1y', '-std=c++14'],
      'ldflags': ['-pthread'],
      'conditions': [
        ['amend_openblas==1', {
          'defines': ['AMEND_OPENBLAS'],
          'cflags_cc': ['<!@(node scripts/detect-blas.mjs cflags)'],
          'libraries': ['<!@(node scripts/detect-blas.mjs libs)'],
        }],
        ['OS=="mac"', {
          'xcode_settings': {
            'OTHER_CPLUSPLUSFLAGS': ['-std=gnu++17', '-O3', '-mcpu=native', '-ffp-contract=fast', '-fno-math-errno'],
            'GCC_ENABLE_CPP_EXCEPTIONS': 'NO',
          },
        }],
      ],
    },
  ],
}
