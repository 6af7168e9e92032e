# Source lists. Each folder's .cpp files are taken whole, so adding an algorithm file needs no
# edit here. Files under src/cpu/isa/ are compiled for one instruction set each, chosen by
# their suffix (XNNPACK's naming: what__where), and picked at run time by CPU detection.
file(GLOB CONVND_SOURCES CONFIGURE_DEPENDS
  ${CMAKE_CURRENT_SOURCE_DIR}/src/core/*.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/reference/*.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/plan/*.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/cpu/*.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/cpu/isa/*.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/api/*.cpp)
file(GLOB CONVND_TOOL_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/tools/*.cpp)

# The files of one instruction set (src/cpu/isa/*__<suffix>.cpp) get its flags.
function(convnd_isa_files suffix flags)
  file(GLOB files CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/cpu/isa/*__${suffix}.cpp)
  if(files)
    set_source_files_properties(${files} PROPERTIES COMPILE_OPTIONS "${flags}")
  endif()
endfunction()

function(convnd_set_isa_flags)
  set(avx512 "-mavx512f;-mavx512bw;-mavx512vl;-mavx512dq;-mfma;-mf16c;-mavx2")
  convnd_isa_files(avx2 "-mavx2;-mfma;-mf16c")
  convnd_isa_files(avx512 "${avx512}")
  # The bf16 levels: avx512 plus VDPBF16PS, and plus the AMX tiles.
  convnd_isa_files(avx512bf16 "${avx512};-mavx512bf16")
  convnd_isa_files(amx "${avx512};-mavx512bf16;-mamx-tile;-mamx-bf16")
endfunction()

# The CUTLASS 4 Hopper conv kernels (src/cuda/cutlass/*.cu): header-only, from the pinned
# nvidia-cutlass wheel of PyPI that scripts/fetch-cutlass unpacks (CONVND_CUTLASS_DIR: its
# cutlass_library/source). Compiled for sm_90a, where wgmma lives, as an object library of
# their own; without the headers the build goes on and the planner says the kernels are absent.
set(CONVND_CUTLASS_VERSION "4.2.0.0")
set(CONVND_CUTLASS_DIR "$ENV{HOME}/.cache/convnd-cutlass-${CONVND_CUTLASS_VERSION}/cutlass_library/source"
    CACHE PATH "cutlass_library/source of the nvidia-cutlass ${CONVND_CUTLASS_VERSION} wheel")
# CONVND_CUTLASS: AUTO (when the headers are there), ON (missing headers are an error) or OFF;
# the environment variable of that name sets the default (python/run_tests.sh builds without).
if(DEFINED ENV{CONVND_CUTLASS})
  set(_convnd_cutlass_default $ENV{CONVND_CUTLASS})
else()
  set(_convnd_cutlass_default AUTO)
endif()
set(CONVND_CUTLASS ${_convnd_cutlass_default} CACHE STRING "Build the CUTLASS sm90 kernels: AUTO, ON or OFF")
macro(convnd_add_cutlass target)
  file(GLOB _convnd_cutlass_cu CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/cutlass/*.cu)
  set(_convnd_cutlass_found OFF)
  if(_convnd_cutlass_cu AND EXISTS ${CONVND_CUTLASS_DIR}/include/cutlass/cutlass.h
     AND EXISTS ${CONVND_CUTLASS_DIR}/tools/util/include/cutlass/util/packed_stride.hpp)
    set(_convnd_cutlass_found ON)
  endif()
  if(CONVND_CUTLASS STREQUAL "ON" AND NOT _convnd_cutlass_found)
    message(FATAL_ERROR "CONVND_CUTLASS=ON but no CUTLASS headers at CONVND_CUTLASS_DIR=${CONVND_CUTLASS_DIR} "
                        "(scripts/fetch-cutlass fetches them)")
  endif()
  if(_convnd_cutlass_found AND NOT CONVND_CUTLASS STREQUAL "OFF")
    message(STATUS "convnd: CUTLASS sm90 kernels from ${CONVND_CUTLASS_DIR}")
    add_library(convnd_cutlass OBJECT ${_convnd_cutlass_cu})
    set_target_properties(convnd_cutlass PROPERTIES CUDA_ARCHITECTURES OFF CUDA_STANDARD 17
                          CUDA_STANDARD_REQUIRED ON POSITION_INDEPENDENT_CODE ON)
    target_include_directories(convnd_cutlass PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
    target_include_directories(convnd_cutlass SYSTEM PRIVATE ${CONVND_CUTLASS_DIR}/include
                               ${CONVND_CUTLASS_DIR}/tools/util/include)
    # NDEBUG: a device-side assert makes ptxas serialise wgmma (sm90_conv.cuh).
    target_compile_options(convnd_cutlass PRIVATE -gencode=arch=compute_90a,code=sm_90a
                           --expt-relaxed-constexpr -DNDEBUG -O3)
    target_sources(${target} PRIVATE $<TARGET_OBJECTS:convnd_cutlass>)
    target_compile_definitions(${target} PRIVATE CONVND_WITH_CUTLASS=1)
  else()
    message(STATUS "convnd: CUTLASS sm90 kernels left out (CONVND_CUTLASS=${CONVND_CUTLASS}, "
                   "CONVND_CUTLASS_DIR=${CONVND_CUTLASS_DIR}; scripts/fetch-cutlass fetches the headers)")
  endif()
endmacro()

# The CUDA backend: host code in src/cuda/*.cpp and device code in src/cuda/kernels/*.cu,
# compiled for sm_90 only. Without nvcc (or with CONVND_CUDA=OFF) src/cuda/no_cuda.cpp
# stands in and every CUDA request is an 'unsupported' error.
# A macro, not a function: enable_language(CUDA) must run in the directory's scope, or the
# generator lacks the CUDA rule variables.
macro(convnd_add_cuda target)
  set(_convnd_cuda ${CONVND_CUDA})
  # The toolkit's default place counts as found even when nvcc is not on PATH (pip install .).
  if((_convnd_cuda STREQUAL "AUTO" OR _convnd_cuda) AND NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
    find_program(_convnd_nvcc_on_path nvcc NO_CACHE NO_CMAKE_PATH NO_CMAKE_ENVIRONMENT_PATH NO_CMAKE_SYSTEM_PATH)
    if(NOT _convnd_nvcc_on_path AND EXISTS /usr/local/cuda/bin/nvcc)
      set(ENV{CUDACXX} /usr/local/cuda/bin/nvcc)
    endif()
  endif()
  if(_convnd_cuda STREQUAL "AUTO")
    include(CheckLanguage)
    check_language(CUDA)
    if(CMAKE_CUDA_COMPILER)
      set(_convnd_cuda ON)
    else()
      set(_convnd_cuda OFF)
    endif()
  endif()
  file(GLOB _convnd_cu CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/kernels/*.cu)
  file(GLOB _convnd_cuda_host CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/*.cpp)
  list(FILTER _convnd_cuda_host EXCLUDE REGEX "no_cuda\\.cpp$")
  if(_convnd_cuda AND _convnd_cu)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    # The target's warning flags are GCC's; nvcc takes them only for host C++ files.
    get_target_property(_convnd_opts ${target} COMPILE_OPTIONS)
    if(_convnd_opts)
      set(_convnd_wrapped)
      foreach(_convnd_opt IN LISTS _convnd_opts)
        list(APPEND _convnd_wrapped "$<$<COMPILE_LANGUAGE:CXX>:${_convnd_opt}>")
      endforeach()
      set_property(TARGET ${target} PROPERTY COMPILE_OPTIONS ${_convnd_wrapped})
    endif()
    target_sources(${target} PRIVATE ${_convnd_cu} ${_convnd_cuda_host})
    set_target_properties(${target} PROPERTIES CUDA_ARCHITECTURES 90 CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON
                          CUDA_SEPARABLE_COMPILATION OFF)
    # Device code is C++17 (CMake 3.25 knows no CUDA20 dialect for nvcc 13).
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-lineinfo>)
    target_compile_definitions(${target} PUBLIC CONVND_WITH_CUDA=1)
    # cuBLAS is opened with dlopen when first used (src/cuda/runtime.cpp), not linked.
    target_link_libraries(${target} PRIVATE CUDA::cudart_static ${CMAKE_DL_LIBS})
    # The installed package names this file to consumers that find no toolkit of their own.
    get_target_property(CONVND_CUDART_STATIC_LIBRARY CUDA::cudart_static IMPORTED_LOCATION)
    target_compile_definitions(${target} PRIVATE CONVND_CUBLAS_MAJOR="${CUDAToolkit_VERSION_MAJOR}")
    convnd_add_cutlass(${target})
    set(CONVND_HAVE_CUDA ON)
  elseif(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/no_cuda.cpp)
    target_sources(${target} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/no_cuda.cpp)
  endif()
endmacro()
