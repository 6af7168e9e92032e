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

function(convnd_set_isa_flags)
  file(GLOB avx512 CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/cpu/isa/*__avx512.cpp)
  file(GLOB avx2 CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/cpu/isa/*__avx2.cpp)
  if(avx512)
    set_source_files_properties(${avx512} PROPERTIES COMPILE_OPTIONS
      "-mavx512f;-mavx512bw;-mavx512vl;-mavx512dq;-mfma;-mf16c;-mavx2")
  endif()
  if(avx2)
    set_source_files_properties(${avx2} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c")
  endif()
endfunction()

# The CUDA backend: host code in src/cuda/*.cpp and device code in src/cuda/kernels/*.cu,
# compiled for sm_90 only. Without nvcc (or with CONVND_CUDA=OFF) src/cuda/no_cuda.cpp
# stands in and every CUDA request is an 'unsupported' error.
function(convnd_add_cuda target)
  set(want ${CONVND_CUDA})
  if(want STREQUAL "AUTO")
    include(CheckLanguage)
    check_language(CUDA)
    if(CMAKE_CUDA_COMPILER)
      set(want ON)
    else()
      set(want OFF)
    endif()
  endif()
  file(GLOB cu CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/kernels/*.cu)
  file(GLOB host CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/*.cpp)
  list(FILTER host EXCLUDE REGEX "no_cuda\\.cpp$")
  if(want AND cu)
    enable_language(CUDA)
    set(CMAKE_CUDA_ARCHITECTURES 90 PARENT_SCOPE)
    find_package(CUDAToolkit REQUIRED)
    target_sources(${target} PRIVATE ${cu} ${host})
    set_target_properties(${target} PROPERTIES CUDA_ARCHITECTURES 90 CUDA_SEPARABLE_COMPILATION OFF)
    target_compile_definitions(${target} PUBLIC CONVND_WITH_CUDA=1)
    target_link_libraries(${target} PRIVATE CUDA::cudart_static CUDA::cublas)
    set(CONVND_HAVE_CUDA ON PARENT_SCOPE)
  elseif(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/no_cuda.cpp)
    target_sources(${target} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src/cuda/no_cuda.cpp)
  endif()
endfunction()
